"""What a container builds once at init (the Runtime), how, and how it survives a SnapStart restore."""
