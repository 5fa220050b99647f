// A throw-away PKI for tests: root CA, intermediate CA, server and client leaves as PEM files.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::test {

/// How a leaf certificate deviates from a good one (each flag is one way to fail verification).
struct leaf_options {
    bool expired = false;          ///< notBefore 30 days ago, notAfter 1 day ago
    bool self_signed = false;      ///< signed by its own key, not chained to the test root
    bool no_intermediate = false;  ///< cert_chain_file holds the leaf only (issuer not served)
    bool client = false;           ///< extendedKeyUsage clientAuth instead of serverAuth

    friend bool operator==(const leaf_options&, const leaf_options&) = default;
};

/// One generated leaf certificate and its EC P-256 key, as files and as PEM text.
struct leaf_cert {
    std::string name;               ///< the name it was created under (unique per test_ca)
    std::vector<std::string> sans;  ///< subjectAltNames: DNS names and IP addresses
    leaf_options options;
    std::filesystem::path cert_file;        ///< the leaf certificate alone
    std::filesystem::path cert_chain_file;  ///< leaf, then the intermediate unless
                                            ///< no_intermediate or self_signed
    std::filesystem::path key_file;         ///< PKCS#8 PEM private key, unencrypted
    std::string cert_pem;                   ///< contents of cert_file
    std::string cert_chain_pem;             ///< contents of cert_chain_file
    std::string key_pem;                    ///< contents of key_file
};

/// The SANs most tests want: the scripted upstream's host name plus loopback names/addresses.
inline const std::vector<std::string>& default_api_sans() {
    static const std::vector<std::string> sans{"api.example.test", "localhost", "127.0.0.1", "::1"};
    return sans;
}

/// A test PKI generated once per process with the OpenSSL 3 API into a fresh temp directory
/// (removed at exit unless SLUICE_KEEP_TEST_CA is set):
///
///   "sluice test root" (self-signed CA)
///     └─ "sluice test intermediate" (CA, pathlen 0)
///          ├─ server leaves made by leaf()
///          └─ client leaf (mTLS)
///
/// All accessors are thread-safe. Trust root_ca_file() on the verifying side; serve a leaf's
/// cert_chain_file + key_file.
class test_ca {
  public:
    /// The process-wide instance; generated on first use (a few milliseconds).
    static test_ca& instance();

    test_ca(const test_ca&) = delete;
    test_ca& operator=(const test_ca&) = delete;
    ~test_ca();

    /// Directory holding every generated file.
    const std::filesystem::path& directory() const { return dir_; }
    /// The root CA certificate alone (PEM): the trust anchor for verifying server leaves.
    const std::filesystem::path& root_ca_file() const { return root_file_; }
    /// The intermediate CA certificate alone (PEM).
    const std::filesystem::path& intermediate_ca_file() const { return intermediate_file_; }
    /// Root + intermediate (PEM): what a server trusts to verify client certificates.
    const std::filesystem::path& client_ca_file() const { return client_ca_file_; }
    /// PEM text of the root CA certificate.
    const std::string& root_ca_pem() const { return root_pem_; }

    /// Returns the leaf `name`, creating it on first call: signed by the intermediate (unless
    /// options.self_signed), with `sans` as subjectAltNames (each entry an IPv4/IPv6 address or
    /// a DNS name; the first one is also the CN). Later calls with the same name return the
    /// same leaf; asking for the same name with other sans or options throws
    /// std::invalid_argument.
    leaf_cert leaf(const std::string& name, const std::vector<std::string>& sans,
                   leaf_options options = {});

    /// "api": default_api_sans(), valid and chained. The certificate of the scripted upstream.
    leaf_cert api_leaf();
    /// "api-expired": default_api_sans(), expired a day ago.
    leaf_cert expired_leaf();
    /// "other-host": valid for other.example.test only (host name mismatch for api.*).
    leaf_cert wrong_host_leaf();
    /// "api-self-signed": default_api_sans(), self-signed.
    leaf_cert self_signed_leaf();
    /// "api-no-intermediate": default_api_sans(), chain file without the intermediate.
    leaf_cert no_intermediate_leaf();
    /// "client": a client certificate (CN and SAN client.example.test) signed by the
    /// intermediate; servers verify it with client_ca_file().
    leaf_cert client_leaf();
    /// "untrusted-client": a self-signed client certificate (CN untrusted-client.example.test).
    leaf_cert untrusted_client_leaf();

  private:
    test_ca();

    struct key_and_cert;
    std::filesystem::path dir_;
    std::filesystem::path root_file_;
    std::filesystem::path intermediate_file_;
    std::filesystem::path client_ca_file_;
    std::string root_pem_;
    std::unique_ptr<key_and_cert> root_;
    std::unique_ptr<key_and_cert> intermediate_;
    std::mutex mutex_;
    std::map<std::string, leaf_cert> leaves_;
};

}  // namespace sluice::test
