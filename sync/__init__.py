"""The central side: sync protocol, central server, storage and the admin CLI."""
