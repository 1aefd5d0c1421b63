"""The dashboard's domain logic: plain data and arithmetic on integer cents, no Textual, no I/O."""
