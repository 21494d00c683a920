"""The local stack: the production topology as plain processes on 127.0.0.1 under supervisord."""
