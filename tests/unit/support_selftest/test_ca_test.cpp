// Self-tests of test_ca: the generated chain verifies, and each broken variant fails the way
// it is meant to.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "support/test_ca.hpp"

namespace sluice::test {
namespace {

struct x509_deleter {
    void operator()(X509* p) const { X509_free(p); }
};
using x509_ptr = std::unique_ptr<X509, x509_deleter>;

std::vector<x509_ptr> load_certs(const std::filesystem::path& file) {
    std::vector<x509_ptr> certs;
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(file.c_str(), "r"), &std::fclose);
    if (!f)
        return certs;
    while (X509* c = PEM_read_X509(f.get(), nullptr, nullptr, nullptr))
        certs.emplace_back(c);
    return certs;
}

/// Verifies a served chain file against the test root as a TLS client would: returns the
/// X509_V_* result.
int verify_chain(const std::filesystem::path& chain_file, const std::string& host,
                 int purpose = X509_PURPOSE_SSL_SERVER) {
    auto chain = load_certs(chain_file);
    if (chain.empty())
        return -1;
    std::unique_ptr<X509_STORE, void (*)(X509_STORE*)> store(X509_STORE_new(), &X509_STORE_free);
    X509_STORE_load_file(store.get(), test_ca::instance().root_ca_file().c_str());
    std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> untrusted(
        sk_X509_new_null(), [](STACK_OF(X509) * s) { sk_X509_free(s); });
    for (std::size_t i = 1; i < chain.size(); ++i)
        sk_X509_push(untrusted.get(), chain[i].get());
    std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> ctx(X509_STORE_CTX_new(),
                                                                   &X509_STORE_CTX_free);
    X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get());
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_purpose(param, purpose);
    if (!host.empty()) {
        if (host.find(':') != std::string::npos || std::isdigit(host[0]))
            X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
        else
            X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    }
    X509_verify_cert(ctx.get());
    return X509_STORE_CTX_get_error(ctx.get());
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST(TestCa, WritesRootAndIntermediateAsPem) {
    auto& ca = test_ca::instance();
    ASSERT_TRUE(std::filesystem::exists(ca.root_ca_file()));
    ASSERT_TRUE(std::filesystem::exists(ca.intermediate_ca_file()));
    EXPECT_EQ(load_certs(ca.root_ca_file()).size(), 1u);
    EXPECT_EQ(load_certs(ca.client_ca_file()).size(), 2u);
    EXPECT_EQ(read_file(ca.root_ca_file()), ca.root_ca_pem());
    char cn[128] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(load_certs(ca.root_ca_file())[0].get()),
                              NID_commonName, cn, sizeof cn);
    EXPECT_STREQ(cn, "sluice test root");
}

TEST(TestCa, ApiLeafVerifiesForEveryName) {
    auto leaf = test_ca::instance().api_leaf();
    EXPECT_EQ(load_certs(leaf.cert_chain_file).size(), 2u);
    EXPECT_EQ(read_file(leaf.key_file), leaf.key_pem);
    for (const char* host : {"api.example.test", "localhost", "127.0.0.1", "::1"})
        EXPECT_EQ(verify_chain(leaf.cert_chain_file, host), X509_V_OK) << host;
    EXPECT_EQ(verify_chain(leaf.cert_chain_file, "other.example.test"),
              X509_V_ERR_HOSTNAME_MISMATCH);
    EXPECT_EQ(verify_chain(leaf.cert_chain_file, "127.0.0.2"), X509_V_ERR_IP_ADDRESS_MISMATCH);
}

TEST(TestCa, BrokenLeavesFailVerification) {
    auto& ca = test_ca::instance();
    EXPECT_EQ(verify_chain(ca.expired_leaf().cert_chain_file, "api.example.test"),
              X509_V_ERR_CERT_HAS_EXPIRED);
    EXPECT_EQ(verify_chain(ca.wrong_host_leaf().cert_chain_file, "api.example.test"),
              X509_V_ERR_HOSTNAME_MISMATCH);
    EXPECT_EQ(verify_chain(ca.wrong_host_leaf().cert_chain_file, "other.example.test"), X509_V_OK);
    EXPECT_NE(verify_chain(ca.self_signed_leaf().cert_chain_file, "api.example.test"), X509_V_OK);
    EXPECT_EQ(load_certs(ca.no_intermediate_leaf().cert_chain_file).size(), 1u);
    EXPECT_EQ(verify_chain(ca.no_intermediate_leaf().cert_chain_file, "api.example.test"),
              X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST(TestCa, ClientLeafIsForClientAuth) {
    auto& ca = test_ca::instance();
    EXPECT_EQ(verify_chain(ca.client_leaf().cert_chain_file, "", X509_PURPOSE_SSL_CLIENT),
              X509_V_OK);
    EXPECT_EQ(verify_chain(ca.client_leaf().cert_chain_file, "", X509_PURPOSE_SSL_SERVER),
              X509_V_ERR_INVALID_PURPOSE);
    EXPECT_NE(verify_chain(ca.untrusted_client_leaf().cert_chain_file, "", X509_PURPOSE_SSL_CLIENT),
              X509_V_OK);
}

TEST(TestCa, LeavesAreCachedByName) {
    auto& ca = test_ca::instance();
    auto a = ca.leaf("selftest-cache", {"cache.example.test"});
    auto b = ca.leaf("selftest-cache", {"cache.example.test"});
    EXPECT_EQ(a.cert_file, b.cert_file);
    EXPECT_EQ(a.cert_pem, b.cert_pem);
    EXPECT_THROW(ca.leaf("selftest-cache", {"other.example.test"}), std::invalid_argument);
    EXPECT_THROW(ca.leaf("selftest-cache", {"cache.example.test"}, {.expired = true}),
                 std::invalid_argument);
}

}  // namespace
}  // namespace sluice::test
