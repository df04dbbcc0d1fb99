"""ccd's outbound brain: campaigns, leads, compliance and pacing (IO-free, like acd)."""
