"""The Qt-free application layer both front ends (cli, ui) build on: settings, conversation
history, model choice and the services assembled from them."""
