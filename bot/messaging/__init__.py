"""Messages in and out of WhatsApp and SMS: normalising, rules of the channel, and the one sender."""
