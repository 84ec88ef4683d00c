"""Process isolation: the DLL owner runs in a supervised child process and forwards events over local ZMQ.

`child` is the child's entry point, `supervisor` restarts it, `feed` is the `ProcessFeed` the App sees and
`protocol` is what the two sides say to each other.
"""
