from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts import tokens

        tokens.signals_connect()  # cached API tokens follow their users and their deletion
