using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mobility.Protocol.Identity;
using Mobility.Transport;
using Mobility.Transport.Flows;
using Mobility.Transport.Relay;

namespace Mobility.Daemon.Relay;

/// <summary>
/// Keeps this host registered at one of its home relays (<c>--relay</c>): registers at the first that
/// accepts, serves the relay's data connections on the transport listener, and when the registration
/// ends (the relay died or restarted) registers again, at the next relay first, with capped exponential
/// back-off and jitter while none accepts. After a move (<see cref="NotifyLocalAddresses"/>) whose old
/// address carried the registration, it registers again at once from the new one, at the same relay first
/// (the relay replaces the dead registration), instead of waiting for the dead connection to time out.
/// <see cref="Current"/> is the relay to publish as a Relay locator; <see cref="Changed"/> fires whenever it changes.
/// </summary>
public sealed partial class RelayRegistrar : IAsyncDisposable
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    private readonly HostKey _key;
    private readonly IReadOnlyList<RelayTarget> _relays;
    private readonly IFlowFactory _tls;
    private readonly MobileListener _listener;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private IPEndPoint? _current;
    private RelayFlowListener? _registration;
    private int _sameRelayAgain;
    private Task _loop = Task.CompletedTask;

    /// <param name="pins">SHA-256 fingerprints a <c>tls://</c> relay's certificate must match (docs/nat.md, "TLS to relays").</param>
    public RelayRegistrar(HostKey key, IReadOnlyList<RelayTarget> relays, IReadOnlyList<byte[]> pins, MobileListener listener, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(relays);
        ArgumentOutOfRangeException.ThrowIfZero(relays.Count);
        _key = key;
        _relays = relays;
        _tls = new PinnedTlsFlowFactory(TcpFlowFactory.Instance, pins);
        _listener = listener;
        _logger = logger;
    }

    /// <summary>The relay this host is registered at now; null while it is at none.</summary>
    public IPEndPoint? Current => Volatile.Read(ref _current);

    /// <summary>Raised (on the registrar's loop) when <see cref="Current"/> changed.</summary>
    public event EventHandler? Changed;

    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token));

    /// <summary>
    /// The host's addresses are now <paramref name="addresses"/>: when the registration's control connection left
    /// from an address the host no longer has (a move), it is dead though neither end has seen it close; it is
    /// dropped and the host registers again at once, at the same relay first.
    /// </summary>
    public void NotifyLocalAddresses(IReadOnlyCollection<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        if (Volatile.Read(ref _registration) is not { } registration || registration.ControlEndPoint?.Address is not { } bound)
        {
            return;
        }

        bound = bound.IsIPv4MappedToIPv6 ? bound.MapToIPv4() : bound;
        if (addresses.Any(a => (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Equals(bound)))
        {
            return;
        }

        Log.AddressGone(_logger, registration.LocalEndPoint, bound);
        Volatile.Write(ref _sameRelayAgain, 1);
        _ = registration.DisposeAsync().AsTask();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var next = 0;
        var backoff = MinBackoff;
        while (!ct.IsCancellationRequested)
        {
            var target = _relays[next];
            var relay = target.EndPoint;
            next = (next + 1) % _relays.Count;
            var again = Interlocked.Exchange(ref _sameRelayAgain, 0) == 1;
            RelayFlowListener registration;
            try
            {
                registration = await RelayFlowListener.RegisterAsync(_key, relay, target.Tls ? _tls : null, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                Log.RegistrationFailed(_logger, relay, e.Message);
                if (again)
                {
                    // The re-registration after a move failed: the old registration is gone, so is the locator.
                    SetCurrent(null);
                }

                try
                {
                    await Task.Delay(backoff + (backoff * Random.Shared.NextDouble() / 2), ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                continue;
            }

            backoff = MinBackoff;
            Log.Registered(_logger, target);
            SetCurrent(relay);
            await using (registration.ConfigureAwait(false))
            {
                using var stop = ct.Register(() => _ = registration.DisposeAsync().AsTask());
                Volatile.Write(ref _registration, registration);
                await _listener.ServeAsync(registration).ConfigureAwait(false);
                Volatile.Write(ref _registration, null);
                var reason = registration.Closed.IsCompleted ? await registration.Closed.ConfigureAwait(false) : null;
                if (!ct.IsCancellationRequested && Volatile.Read(ref _sameRelayAgain) == 0)
                {
                    Log.RegistrationFailed(_logger, relay, $"the registration ended ({reason?.Message ?? "closed"}); registering again");
                }
            }

            if (Volatile.Read(ref _sameRelayAgain) == 1)
            {
                // Dropped after a move: the same relay again, at once; the locator stays until that fails.
                next = (next + _relays.Count - 1) % _relays.Count;
                continue;
            }

            // Registers again, at the next relay of the list first (the one that just ended is tried last).
            SetCurrent(null);
        }
    }

    private void SetCurrent(IPEndPoint? relay)
    {
        Volatile.Write(ref _current, relay);
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private static partial class Log
    {
        [LoggerMessage(10400, LogLevel.Information, "Registered at relay {Relay}: published as a relay locator")]
        public static partial void Registered(ILogger logger, RelayTarget relay);

        [LoggerMessage(10401, LogLevel.Warning, "Registration at relay {Relay} failed: {Reason}")]
        public static partial void RegistrationFailed(ILogger logger, IPEndPoint relay, string reason);

        [LoggerMessage(10420, LogLevel.Information, "The registration at relay {Relay} left from {Address}, which this host no longer has: registering again from the new address")]
        public static partial void AddressGone(ILogger logger, IPEndPoint relay, IPAddress address);
    }
}
