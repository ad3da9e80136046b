"""Turns a round's rosbags into training data, retrains policy and error predictors, publishes the next round's models."""
