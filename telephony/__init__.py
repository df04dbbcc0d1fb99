"""The Asterisk adapter: AMI traffic to domain events, commands to AMI actions."""
