internal import CCurl
import Foundation
import Synchronization

/// The process's one libcurl engine: a thread that drives a multi handle.
///
/// `curl_global_init` runs once, in `shared`'s initializer. Other threads only queue commands and
/// call `curl_multi_wakeup`, which libcurl documents as thread-safe; everything else happens on
/// the engine thread, which is what makes `@unchecked Sendable` true here.
final class CurlEngine: @unchecked Sendable {
    static let shared = CurlEngine()

    private enum Command {
        case add(Transfer)
        case cancel(Transfer)
    }

    private let multi: UnsafeMutableRawPointer
    private let commands = Mutex<[Command]>([])
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]  // engine thread only

    private init() {
        precondition(curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK, "curl_global_init failed")
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        // Keep enough idle connections for many hosts and bursts at once (Telegram, FAL, S3);
        // past this, curl closes the oldest idle one.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 256)
        let thread = Thread { [self] in self.run() }
        thread.name = "curl-engine"
        thread.start()
    }

    func submit(_ transfer: Transfer) {
        commands.withLock { $0.append(.add(transfer)) }
        curl_multi_wakeup(multi)
    }

    func cancel(_ transfer: Transfer) {
        commands.withLock { $0.append(.cancel(transfer)) }
        curl_multi_wakeup(multi)
    }

    private func run() {
        while true {
            for command in commands.withLock({ commands in defer { commands = [] }; return commands }) {
                switch command {
                case .add(let transfer): start(transfer)
                case .cancel(let transfer): abort(transfer)
                }
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                      let transfer = active.removeValue(forKey: handle)
                else { continue }
                let result = ccurl_msg_result(message)
                curl_multi_remove_handle(multi, handle)
                complete(transfer, with: transfer.finish(result))
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func start(_ transfer: Transfer) {
        // A cancellation that raced ahead of the add: never start the transfer.
        if transfer.isCancelled { return complete(transfer, with: .failure(CancellationError())) }
        do {
            let handle = try transfer.prepare()
            active[handle] = transfer
            curl_multi_add_handle(multi, handle)
        } catch {
            complete(transfer, with: .failure(error))
        }
    }

    private func abort(_ transfer: Transfer) {
        guard let handle = transfer.handle, active.removeValue(forKey: handle) != nil else { return }
        curl_multi_remove_handle(multi, handle)
        transfer.discardResponseFile()
        complete(transfer, with: .failure(CancellationError()))
    }

    private func complete(_ transfer: Transfer, with result: Result<CurlResponse, any Error>) {
        transfer.cleanUp()
        transfer.continuation?.resume(with: result)
        transfer.continuation = nil
    }
}
