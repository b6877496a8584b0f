"""The guard console: a web page served by the gate for guards and admins."""
