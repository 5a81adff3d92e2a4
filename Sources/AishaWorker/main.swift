print("aisha-worker placeholder")
