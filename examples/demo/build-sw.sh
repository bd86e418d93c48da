# The system's one "package": a hello command.
mkdir -p "$out/bin"
printf '#!/bin/sh\necho "hello from the demo system"\n' > "$out/bin/hello"
chmod +x "$out/bin/hello"
