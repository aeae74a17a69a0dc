"""Pure domain rules: no boto3, no chalice, no I/O."""
