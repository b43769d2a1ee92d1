"""Custom actions run by the rasa_sdk action server: thin entrypoints over bot/ services."""
