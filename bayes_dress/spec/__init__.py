"""What a user asks for: prior distributions, model specs and run configurations, validated."""
