"""The `daytrade` console script: one dispatcher that reaches every part, lazily."""
