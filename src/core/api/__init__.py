"""The HTTP surface: the FastAPI app, its routers, middleware, error model and the query flow."""
