"""Product-drop backend: domain rules, use cases and the DynamoDB adapter."""
