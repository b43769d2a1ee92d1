import pytest

from bot.phone import InvalidPhoneNumber, normalize_phone, phone_country


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


@pytest.mark.parametrize(
    ("phone", "country"),
    [("+525512345678", "MX"), ("+5491123456789", "AR"), ("+51987654321", "PE"),
     ("+573105551234", "CO"), ("+56987654321", "CL"), ("+14155238886", "US")],
)  # fmt: skip
def test_a_number_tells_its_country(phone, country):
    assert phone_country(phone) == country


@pytest.mark.parametrize("phone", ["", "hola", "a1b2c3d4e5", "+80012345678"])
def test_a_number_of_no_single_country_has_none(phone):
    assert phone_country(phone) is None
