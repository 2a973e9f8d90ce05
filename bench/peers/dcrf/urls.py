"""The DCRF peer serves no HTTP pages."""

urlpatterns: list = []
