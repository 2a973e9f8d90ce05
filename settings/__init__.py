"""Project package: settings modules (base, dev, test, prod), ASGI application and URLs."""
