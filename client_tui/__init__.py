"""The Textual dashboard: a trading client over the daytrade line protocol."""
