"""Hotline (数字城管 / 12345) push through a transactional outbox, and signed status callbacks.

Import what you need from its modules (``urbaneye.hotline.callbacks``, ``signing``, ``relay``, ...): the
package itself loads nothing, so the signing helpers come without the database layer.
"""
