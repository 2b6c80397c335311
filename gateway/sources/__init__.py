"""Where inputs come from: the Pi's radio (bleak), scanner nodes and phones (MQTT), traces."""
