"""Hotline (数字城管 / 12345) push through a transactional outbox, and signed status callbacks."""
