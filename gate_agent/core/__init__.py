"""Pure decision logic shared by the gate and the central server: no I/O, no clock reads."""
