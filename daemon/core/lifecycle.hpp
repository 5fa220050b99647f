// Talking to the service manager and checking health from outside (DESIGN §3.9).
#pragma once

#include <string>

namespace sluice::lifecycle {

/// Tells systemd (Type=notify) that startup finished: `READY=1` and the main PID. A no-op when
/// not started by systemd ($NOTIFY_SOCKET unset). Uses libsystemd's sd_notify.
void notify_ready();

/// `RELOADING=1` with `MONOTONIC_USEC` (systemd >= 253 checks it), before a config reload;
/// follow with notify_ready() once the reload is done, whatever its result.
void notify_reloading();

/// `STOPPING=1`: draining has begun.
void notify_stopping();

/// `sluice healthcheck URL`: GETs the plain-HTTP `url` (e.g. http://127.0.0.1:9464/healthz)
/// with a 3 s timeout. Returns 0 on a 2xx answer, 1 otherwise, printing why on stderr. Needs no
/// tool in the image besides sluice itself (Docker HEALTHCHECK).
int healthcheck(const std::string& url);

}  // namespace sluice::lifecycle
