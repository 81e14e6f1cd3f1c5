using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Mobility.Transport;

public sealed partial class MobileConnector
{
    /// <summary>
    /// Connects to an application at a plain address, deciding by a verified GUID: when
    /// <see cref="AddressConnectOptions.Owners"/> says the address's owner proved a GUID and publishes
    /// transport endpoints, a mobile connection to that GUID (the handshake must prove that very GUID,
    /// so a claim alone never gets one), on which <see cref="AddressConnectOptions.OpenStream"/> names
    /// the target; otherwise an ordinary TCP connection to <paramref name="target"/>. A mobile attempt
    /// that fails before any application byte falls back to plain TCP (unless
    /// <see cref="AddressConnectOptions.FallBackWhenMobileFails"/> is false). Plain TCP connect failures
    /// are thrown as the <see cref="SocketException"/>.
    /// </summary>
    public async Task<AddressConnection> ConnectToAddressAsync(IPEndPoint target, AddressConnectOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Owners);
        if (target.Port == 0)
        {
            throw new ArgumentException("The target port is required.", nameof(target));
        }

        var owner = await options.Owners.ResolveAsync(target.Address, cancellationToken).ConfigureAwait(false);
        string reason;
        if (owner is null || owner.TransportEndPoints.Count == 0)
        {
            reason = $"no verified owner of {target.Address} with a mobile transport";
        }
        else if (owner.Guid == _key.Guid)
        {
            reason = $"{target.Address} is this host's own address";
        }
        else
        {
            MobileConnection? connection = null;
            try
            {
                connection = await ConnectCoreAsync(owner.TransportEndPoints, owner.Guid, options.Locator, cancellationToken).ConfigureAwait(false);
                if (options.OpenStream is { } open)
                {
                    await open(connection, target, cancellationToken).ConfigureAwait(false);
                }

                return new AddressConnection(target, connection);
            }
            catch (Exception e) when (e is IOException && !cancellationToken.IsCancellationRequested)
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }

                options.Owners.Forget(target.Address);
                if (!options.FallBackWhenMobileFails)
                {
                    throw;
                }

                reason = $"the mobile attempt to {owner.Guid} failed: {e.Message}";
            }
            catch
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }

                throw;
            }
        }

        Log.PlainTcp(_logger, target, reason);
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            options.PlainSocketSetup?.Invoke(socket);
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new AddressConnection(target, socket, reason);
    }

    private static partial class Log
    {
        [LoggerMessage(9030, LogLevel.Debug, "Connecting to {Target} over plain TCP: {Reason}")]
        public static partial void PlainTcp(ILogger logger, IPEndPoint target, string reason);
    }
}
