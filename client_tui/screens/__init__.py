"""The dashboard's screens: login, the tabbed dashboard, and its dialogs."""
