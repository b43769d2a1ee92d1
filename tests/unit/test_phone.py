import pytest

from bot.phone import InvalidPhoneNumber, normalize_phone


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+52 55 1234 5678", "MX", "+525512345678"),
        ("whatsapp:+5215512345678", "MX", "+525512345678"),  # WhatsApp's legacy Mexican "1"
        ("55 1234 5678", "MX", "+525512345678"),
        ("(55) 1234-5678", "MX", "+525512345678"),
        ("whatsapp:+5491123456789", "AR", "+5491123456789"),
        ("+54 9 11 2345-6789", "MX", "+5491123456789"),
        ("0051987654321", "MX", "+51987654321"),
        ("987 654 321", "PE", "+51987654321"),
        ("sms:+573105551234", "MX", "+573105551234"),
        ("+56 9 8765 4321", "MX", "+56987654321"),
    ],
)
def test_numbers_as_channels_and_people_write_them_become_e164(raw, country, expected):
    assert normalize_phone(raw, country) == expected


@pytest.mark.parametrize("raw", ["", "hola", "12", "default", "+52 1"])
def test_text_that_is_not_a_phone_number_is_refused(raw):
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw, "MX")
