// RFC 9209 error types, their statuses and the Proxy-Status field values.
#include "core/proxy_error.hpp"

namespace sluice {

namespace {

class proxy_error_category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "sluice.proxy"; }
    std::string message(int ev) const override {
        return std::string(type_name(static_cast<proxy_errc>(ev)));
    }
};

// RFC 8941 §3.3.3: an sf-string holds printable ASCII, with '"' and '\' escaped.
void append_sf_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c >= 0x20 && c < 0x7f) {
            out += c;
        }
    }
    out += '"';
}

}  // namespace

const std::error_category& proxy_category() noexcept {
    static const proxy_error_category category;
    return category;
}

std::string_view type_name(proxy_errc e) noexcept {
    switch (e) {
        case proxy_errc::http_request_error:
            return "http_request_error";
        case proxy_errc::http_request_denied:
            return "http_request_denied";
        case proxy_errc::destination_ip_prohibited:
            return "destination_ip_prohibited";
        case proxy_errc::dns_error:
            return "dns_error";
        case proxy_errc::destination_ip_unroutable:
            return "destination_ip_unroutable";
        case proxy_errc::connection_refused:
            return "connection_refused";
        case proxy_errc::connection_timeout:
            return "connection_timeout";
        case proxy_errc::connection_terminated:
            return "connection_terminated";
        case proxy_errc::connection_read_timeout:
            return "connection_read_timeout";
        case proxy_errc::connection_write_timeout:
            return "connection_write_timeout";
        case proxy_errc::tls_protocol_error:
            return "tls_protocol_error";
        case proxy_errc::tls_certificate_error:
            return "tls_certificate_error";
        case proxy_errc::http_protocol_error:
            return "http_protocol_error";
        case proxy_errc::http_response_header_section_size:
            return "http_response_header_section_size";
        case proxy_errc::http_response_incomplete:
            return "http_response_incomplete";
        case proxy_errc::proxy_loop_detected:
            return "proxy_loop_detected";
        case proxy_errc::proxy_internal_response:
            return "proxy_internal_response";
        case proxy_errc::destination_unavailable:
            return "destination_unavailable";
        case proxy_errc::proxy_internal_error:
            return "proxy_internal_error";
    }
    return "proxy_internal_error";
}

unsigned default_status(proxy_errc e) noexcept {
    switch (e) {
        case proxy_errc::http_request_error:
            return 400;
        case proxy_errc::http_request_denied:
        case proxy_errc::destination_ip_prohibited:
            return 403;
        case proxy_errc::connection_read_timeout:
        case proxy_errc::connection_write_timeout:
            return 504;
        case proxy_errc::proxy_internal_response:
            return 429;
        case proxy_errc::destination_unavailable:
            return 503;
        case proxy_errc::proxy_internal_error:
            return 500;
        default:
            return 502;
    }
}

std::string proxy_status_error(proxy_errc e, std::string_view details) {
    std::string out = "sluice; error=";
    out += type_name(e);
    if (!details.empty()) {
        out += "; details=";
        append_sf_string(out, details);
    }
    return out;
}

std::string proxy_status_received(unsigned status) {
    return "sluice; received-status=" + std::to_string(status);
}

}  // namespace sluice
