"""The dashboard's widgets: header, status line, and one view per tab."""
