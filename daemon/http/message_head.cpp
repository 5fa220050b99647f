// Serializing message heads by hand: the fields are already valid (Beast parsed or set them).
#include "http/message_head.hpp"

namespace sluice::http {

namespace {

void append_version(std::string& out, unsigned version) {
    out += "HTTP/";
    out += static_cast<char>('0' + version / 10);
    out += '.';
    out += static_cast<char>('0' + version % 10);
}

void append_fields(std::string& out, const bhttp::fields& f) {
    for (const auto& field : f) {
        out += field.name_string();
        out += ": ";
        out += field.value();
        out += "\r\n";
    }
    out += "\r\n";
}

}  // namespace

void append_head(std::string& out, const bhttp::request_header<>& h) {
    out += h.method_string();
    out += ' ';
    out += h.target();
    out += ' ';
    append_version(out, h.version());
    out += "\r\n";
    append_fields(out, h);
}

void append_head(std::string& out, const bhttp::response_header<>& h) {
    append_version(out, h.version());
    const unsigned code = h.result_int();
    const char digits[] = {' ', static_cast<char>('0' + code / 100 % 10),
                           static_cast<char>('0' + code / 10 % 10),
                           static_cast<char>('0' + code % 10), ' '};
    out.append(digits, sizeof digits);
    out += h.reason();
    out += "\r\n";
    append_fields(out, h);
}

}  // namespace sluice::http
