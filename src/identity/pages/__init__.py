"""Three small pages identity serves for the links it mails (a SPA can own them instead)."""
