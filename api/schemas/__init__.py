"""Request/response schemas, one module per resource, apart from the database tables."""
