print("aisha-server placeholder")
