"""The login app: accounts (register, login, logout) and the account page."""
