"""The robustness harness: a real cluster under faults, its recorded history, and the checkers that judge it."""
