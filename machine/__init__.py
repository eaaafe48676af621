"""What this machine is: the hardware profile and its parsers, live probes, devices and live memory."""
