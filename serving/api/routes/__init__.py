"""One router per resource of the decision API."""
