internal import COpenSSL

/// OpenSSL's process-wide set-up, shared by this module, libpq (SCRAM authentication) and curl.
public enum OpenSSLProcess {
    /// Initialises OpenSSL without its exit-time cleanup. Call before anything else uses
    /// OpenSSL; later calls do nothing.
    ///
    /// By default OpenSSL frees its global state in an `atexit` handler. A process whose `main`
    /// returns while another thread is still inside libcrypto (a libpq connection authenticating,
    /// say) then crashes on the way out: `aisha-probe` exited with SIGSEGV in libcrypto after a
    /// clean SIGTERM shutdown in a loaded test run. The memory is the operating system's to reclaim.
    public static func initialize() { _ = initialized }

    private static let initialized: Bool = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil) == 1
}
