// Generates the test PKI of test_ca.hpp with the OpenSSL 3 EVP/X509 API.
#include "support/test_ca.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <system_error>

namespace sluice::test {

namespace {

namespace fs = std::filesystem;

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_deleter {
    void operator()(X509* p) const { X509_free(p); }
};
struct bio_deleter {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct ext_deleter {
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct bn_deleter {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, ext_deleter>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;

/// Throws with the OpenSSL error queue appended, so a failed generation says why.
[[noreturn]] void fail(const std::string& what) {
    std::string msg = "test_ca: " + what;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        msg += "; ";
        msg += buf;
    }
    throw std::runtime_error(msg);
}

void check(int ok, const char* what) {
    if (ok <= 0)
        fail(what);
}

pkey_ptr make_key() {
    pkey_ptr key{EVP_EC_gen("P-256")};
    if (!key)
        fail("EVP_EC_gen(P-256)");
    return key;
}

bool is_ip_address(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
    check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                     0),
          "X509_NAME_add_entry_by_txt");
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ext_ptr ext{X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str())};
    if (!ext)
        fail("extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

void set_random_serial(X509* cert) {
    unsigned char bytes[16];
    check(RAND_bytes(bytes, sizeof bytes), "RAND_bytes");
    bytes[0] &= 0x7f;  // positive
    bytes[0] |= 0x01;  // and never zero
    bn_ptr bn{BN_bin2bn(bytes, sizeof bytes, nullptr)};
    if (!bn)
        fail("BN_bin2bn");
    if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
        fail("BN_to_ASN1_INTEGER");
}

/// Sets the validity window in days relative to now (negative = past).
void set_validity(X509* cert, long not_before_days, long not_after_days) {
    if (!X509_time_adj_ex(X509_getm_notBefore(cert), static_cast<int>(not_before_days), 0, nullptr))
        fail("notBefore");
    if (!X509_time_adj_ex(X509_getm_notAfter(cert), static_cast<int>(not_after_days), 0, nullptr))
        fail("notAfter");
}

std::string pem_of(X509* cert) {
    bio_ptr bio{BIO_new(BIO_s_mem())};
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of(EVP_PKEY* key) {
    bio_ptr bio{BIO_new(BIO_s_mem())};
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

void write_file(const fs::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out)
        throw std::runtime_error("test_ca: cannot write " + path.string());
}

/// Keeps file names portable whatever name a test picks.
std::string file_stem(const std::string& name) {
    std::string s;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        s += ok ? c : '_';
    }
    return s;
}

fs::path make_unique_dir() {
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto dir = fs::temp_directory_path() /
                   ("sluice-test-ca-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        std::error_code ec;
        if (fs::create_directory(dir, ec))
            return dir;
    }
    throw std::runtime_error("test_ca: cannot create a temp directory");
}

}  // namespace

struct test_ca::key_and_cert {
    pkey_ptr key;
    x509_ptr cert;
};

namespace {

struct cert_spec {
    std::string common_name;
    std::vector<std::string> sans;
    bool ca = false;
    int path_len = -1;  // CA only; -1 = unlimited
    bool client = false;
    long not_before_days = -1;
    long not_after_days = 365;
};

/// Builds and signs one X.509 v3 certificate; `issuer` null means self-signed.
x509_ptr build_cert(const cert_spec& spec, EVP_PKEY* key, const X509* issuer_cert,
                    EVP_PKEY* issuer_key) {
    x509_ptr cert{X509_new()};
    if (!cert)
        fail("X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    set_random_serial(cert.get());
    set_validity(cert.get(), spec.not_before_days, spec.not_after_days);
    check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");

    X509_NAME* subject = X509_get_subject_name(cert.get());
    add_name_entry(subject, "O", "sluice tests");
    add_name_entry(subject, "CN", spec.common_name);
    X509* issuer = issuer_cert ? const_cast<X509*>(issuer_cert) : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)), "X509_set_issuer_name");

    if (spec.ca) {
        std::string bc = "critical,CA:TRUE";
        if (spec.path_len >= 0)
            bc += ",pathlen:" + std::to_string(spec.path_len);
        add_extension(cert.get(), issuer, NID_basic_constraints, bc);
        add_extension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
        add_extension(cert.get(), issuer, NID_ext_key_usage,
                      spec.client ? "clientAuth" : "serverAuth");
    }
    add_extension(cert.get(), issuer, NID_subject_key_identifier, "hash");
    if (issuer_cert)
        add_extension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
    if (!spec.sans.empty()) {
        std::string san;
        for (const auto& name : spec.sans) {
            if (!san.empty())
                san += ",";
            san += (is_ip_address(name) ? "IP:" : "DNS:") + name;
        }
        add_extension(cert.get(), issuer, NID_subject_alt_name, san);
    }
    if (!X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()))
        fail("X509_sign " + spec.common_name);
    return cert;
}

}  // namespace

test_ca& test_ca::instance() {
    static test_ca ca;
    return ca;
}

test_ca::test_ca() : dir_(make_unique_dir()) {
    root_ = std::make_unique<key_and_cert>();
    root_->key = make_key();
    root_->cert = build_cert({.common_name = "sluice test root",
                              .ca = true,
                              .not_before_days = -30,
                              .not_after_days = 3650},
                             root_->key.get(), nullptr, nullptr);

    intermediate_ = std::make_unique<key_and_cert>();
    intermediate_->key = make_key();
    intermediate_->cert = build_cert({.common_name = "sluice test intermediate",
                                      .ca = true,
                                      .path_len = 0,
                                      .not_before_days = -30,
                                      .not_after_days = 3650},
                                     intermediate_->key.get(), root_->cert.get(), root_->key.get());

    root_pem_ = pem_of(root_->cert.get());
    const std::string intermediate_pem = pem_of(intermediate_->cert.get());
    root_file_ = dir_ / "root-ca.pem";
    intermediate_file_ = dir_ / "intermediate-ca.pem";
    client_ca_file_ = dir_ / "client-ca.pem";
    write_file(root_file_, root_pem_);
    write_file(intermediate_file_, intermediate_pem);
    write_file(client_ca_file_, root_pem_ + intermediate_pem);
}

test_ca::~test_ca() {
    if (std::getenv("SLUICE_KEEP_TEST_CA") == nullptr) {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
}

leaf_cert test_ca::leaf(const std::string& name, const std::vector<std::string>& sans,
                        leaf_options options) {
    std::lock_guard lock(mutex_);
    if (auto it = leaves_.find(name); it != leaves_.end()) {
        if (it->second.sans != sans || !(it->second.options == options))
            throw std::invalid_argument("test_ca: leaf '" + name +
                                        "' already exists with other SANs or options");
        return it->second;
    }

    auto key = make_key();
    cert_spec spec{
        .common_name = sans.empty() ? name : sans.front(), .sans = sans, .client = options.client};
    if (options.expired) {
        spec.not_before_days = -30;
        spec.not_after_days = -1;
    }
    auto cert = options.self_signed ? build_cert(spec, key.get(), nullptr, nullptr)
                                    : build_cert(spec, key.get(), intermediate_->cert.get(),
                                                 intermediate_->key.get());

    leaf_cert leaf;
    leaf.name = name;
    leaf.sans = sans;
    leaf.options = options;
    leaf.cert_pem = pem_of(cert.get());
    leaf.key_pem = pem_of(key.get());
    leaf.cert_chain_pem = leaf.cert_pem;
    if (!options.self_signed && !options.no_intermediate)
        leaf.cert_chain_pem += pem_of(intermediate_->cert.get());

    const std::string stem = "leaf-" + file_stem(name);
    leaf.cert_file = dir_ / (stem + ".pem");
    leaf.cert_chain_file = dir_ / (stem + "-chain.pem");
    leaf.key_file = dir_ / (stem + "-key.pem");
    write_file(leaf.cert_file, leaf.cert_pem);
    write_file(leaf.cert_chain_file, leaf.cert_chain_pem);
    write_file(leaf.key_file, leaf.key_pem);
    fs::permissions(leaf.key_file, fs::perms::owner_read | fs::perms::owner_write);

    leaves_.emplace(name, leaf);
    return leaf;
}

leaf_cert test_ca::api_leaf() {
    return leaf("api", default_api_sans());
}

leaf_cert test_ca::expired_leaf() {
    return leaf("api-expired", default_api_sans(), {.expired = true});
}

leaf_cert test_ca::wrong_host_leaf() {
    return leaf("other-host", {"other.example.test"});
}

leaf_cert test_ca::self_signed_leaf() {
    return leaf("api-self-signed", default_api_sans(), {.self_signed = true});
}

leaf_cert test_ca::no_intermediate_leaf() {
    return leaf("api-no-intermediate", default_api_sans(), {.no_intermediate = true});
}

leaf_cert test_ca::client_leaf() {
    return leaf("client", {"client.example.test"}, {.client = true});
}

leaf_cert test_ca::untrusted_client_leaf() {
    return leaf("untrusted-client", {"untrusted-client.example.test"},
                {.self_signed = true, .client = true});
}

}  // namespace sluice::test
