"""State that several processes (and, in production, several machines) write together:
kept in one transactional database instead of files coordinated by locks."""
