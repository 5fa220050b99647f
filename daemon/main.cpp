// sluice: command line, config loading, signals (DESIGN §3.9).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "core/lifecycle.hpp"
#include "core/logging.hpp"
#include "http/server.hpp"

namespace {

constexpr const char* version = "0.1.0";

constexpr const char* usage =
    "usage: sluice --config FILE        run the proxy in the foreground\n"
    "       sluice --check-config FILE  validate FILE, print every error, exit 0 or 2\n"
    "       sluice healthcheck URL      GET URL (http://), exit 0 on 2xx, else 1\n"
    "       sluice --version | --help\n"
    "\n"
    "sluice is a local forward proxy for outbound API traffic: point HTTP_PROXY at its\n"
    "listener. Signals: SIGHUP reloads the config, SIGTERM/SIGINT drain and exit.\n";

// Prints every error of a failed load, one `FILE:LINE:COLUMN: key: reason` per line.
bool report(const sluice::config::load_result& r) {
    for (const auto& e : r.errors)
        std::cerr << e.to_string() << "\n";
    return r.value != nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    if (argc == 3 && std::string(argv[1]) == "healthcheck") {
        return sluice::lifecycle::healthcheck(argv[2]);
    }
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--version" || arg == "-V") {
            std::cout << "sluice " << version << "\n";
            return 0;
        }
        if (arg == "--help" || arg == "-h") {
            std::cout << usage;
            return 0;
        }
        // --config FILE, --config=FILE, -c FILE; likewise --check-config.
        bool taken = false;
        for (std::string flag : {"--config", "-c", "--check-config"}) {
            if (arg != flag && !arg.starts_with(flag + "="))
                continue;
            if (arg == flag && i + 1 >= argc) {
                std::cerr << "sluice: " << flag << " needs a FILE\n" << usage;
                return 2;
            }
            config_path = arg == flag ? std::string(argv[++i]) : arg.substr(flag.size() + 1);
            check_only = check_only || flag == "--check-config";
            taken = true;
            break;
        }
        if (taken)
            continue;
        std::cerr << "sluice: unknown argument '" << arg << "'\n" << usage;
        return 2;
    }
    if (config_path.empty()) {
        std::cerr << "sluice: --config FILE is required\n" << usage;
        return 2;
    }

    auto loaded = sluice::config::load_file(config_path);
    if (!report(loaded))
        return 2;
    std::vector<std::string> errors;
    const std::string random_via = sluice::http::random_via_pseudonym();
    auto metrics = std::make_shared<sluice::admin::registry>(version);
    auto rt = sluice::http::make_runtime(loaded.value, random_via, errors, nullptr, metrics);
    if (!rt) {
        for (const auto& e : errors)
            std::cerr << e << "\n";
        return 2;
    }
    if (check_only) {
        std::cout << config_path << ": OK\n";
        return 0;
    }

    sluice::logging::configure(loaded.value->log);

    // Signals are taken by one thread with sigwait(); every other thread has them blocked.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGHUP, SIGTERM, SIGINT, SIGUSR1})
        sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<sluice::http::server> server;
    try {
        server = std::make_unique<sluice::http::server>(rt);
    } catch (const std::exception& e) {
        spdlog::critical("cannot listen on {}:{}: {}", loaded.value->listen.host,
                         loaded.value->listen.port, e.what());
        return 1;
    }
    auto ep = server->local_endpoint();
    spdlog::info(
        "sluice {} proxy listening on {}:{} ({} upstreams, unknown_hosts={})", version,
        ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string(),
        ep.port(), loaded.value->upstreams.size(),
        loaded.value->unknown_hosts == sluice::config::unknown_hosts_mode::passthrough
            ? "passthrough"
            : "reject");
    auto admin_ep = server->admin_endpoint();
    spdlog::info("admin listening on {}:{} (/metrics /healthz /readyz /status)",
                 admin_ep.address().is_v6() ? "[" + admin_ep.address().to_string() + "]"
                                            : admin_ep.address().to_string(),
                 admin_ep.port());

    // Re-reads the config and swaps it in when valid (DESIGN §3.9); false when it was not.
    auto reload = [&]() -> bool {
        auto next = sluice::config::load_file(config_path);
        if (!next.value) {
            for (const auto& e : next.errors)
                spdlog::error("reload rejected: {}", e.to_string());
            return false;
        }
        std::vector<std::string> errs;
        auto next_rt = sluice::http::make_runtime(next.value, random_via, errs,
                                                  server->current().get(), metrics);
        if (!next_rt) {
            for (const auto& e : errs)
                spdlog::error("reload rejected: {}", e);
            return false;
        }
        const auto& old_cfg = *server->current()->cfg;
        if (old_cfg.threads != next.value->threads) {
            spdlog::warn("reload: threads takes effect on restart only");
        }
        if (!(old_cfg.listen == next.value->listen) ||
            !(old_cfg.admin_listen == next.value->admin_listen)) {
            if (!server->rebind(next.value->listen, next.value->admin_listen))
                return false;
        }
        sluice::logging::configure(next.value->log);
        server->swap_runtime(next_rt);
        spdlog::info("config reloaded from {}", config_path);
        return true;
    };

    std::thread signal_thread([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&signals, &sig) != 0)
                continue;
            if (sig == SIGHUP) {
                sluice::lifecycle::notify_reloading();
                metrics->reload(reload());
                sluice::lifecycle::notify_ready();
                continue;
            }
            if (sig == SIGTERM || sig == SIGINT) {
                spdlog::info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                sluice::lifecycle::notify_stopping();
                server->drain();
            }
            return;  // SIGTERM/SIGINT, or SIGUSR1 from main once the server has stopped
        }
    });
    sluice::lifecycle::notify_ready();
    server->run();
    pthread_kill(signal_thread.native_handle(), SIGUSR1);
    signal_thread.join();
    spdlog::info("sluice stopped");
    return 0;
}
