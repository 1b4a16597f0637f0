"""generator"""
