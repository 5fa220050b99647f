// A message head as bytes: start line, fields, blank line, as Beast's serializer writes it, but
// into one contiguous buffer that a small body can follow, so that a request or a response
// leaves in one write (and, over TLS, in one record).
#pragma once

#include <string>

#include <boost/beast/http/message.hpp>

namespace sluice::http {

namespace bhttp = boost::beast::http;

/// Appends "METHOD target HTTP/x.y\r\n", every field as "Name: value\r\n", then "\r\n".
void append_head(std::string& out, const bhttp::request_header<>& h);

/// Appends "HTTP/x.y code reason\r\n" (the reason as received, or the standard one), every
/// field as "Name: value\r\n", then "\r\n".
void append_head(std::string& out, const bhttp::response_header<>& h);

}  // namespace sluice::http
