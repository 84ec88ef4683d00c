"""Long-running soak: the app on the simulator at realistic rates with chaos on a schedule, watched from outside."""
