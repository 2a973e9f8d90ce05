"""
Capture: runs in every process that writes. Turns saves, deletes and bulk calls into keys
to broadcast once their transaction commits; the database's own record of changes lives
here too.
"""
