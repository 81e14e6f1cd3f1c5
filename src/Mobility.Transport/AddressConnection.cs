using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;

namespace Mobility.Transport;

/// <summary>Options of <see cref="MobileConnector.ConnectToAddressAsync"/>.</summary>
public sealed class AddressConnectOptions
{
    /// <summary>Finds the verified owner of the target address (required).</summary>
    public required IAddressOwnerResolver Owners { get; init; }

    /// <summary>
    /// Re-locates the owner's GUID when the mobile connection loses its path (and pushes its moves);
    /// null: only the endpoints the resolver gave are tried again.
    /// </summary>
    public IPeerLocator? Locator { get; init; }

    /// <summary>
    /// Runs on a new mobile connection before it is returned, to tell the owner which of its ports the
    /// application asked for (the target's port); mobilityd writes its open header here and awaits the
    /// answer. An <see cref="IOException"/> from it is a failed mobile attempt. Null: nothing is sent.
    /// </summary>
    public Func<MobileConnection, IPEndPoint, CancellationToken, ValueTask>? OpenStream { get; init; }

    /// <summary>
    /// When the owner is verified but the mobile attempt fails before any application byte (its
    /// transport is unreachable, refuses, or <see cref="OpenStream"/> fails), connect over plain TCP
    /// instead (true, the default: the application named an address, and plain TCP is what it gets
    /// without mobility), or fail (false).
    /// </summary>
    public bool FallBackWhenMobileFails { get; init; } = true;

    /// <summary>
    /// Runs on the plain TCP socket before it connects (mobilityd sets its socket mark there, so that its own
    /// interception rules let the connection pass). Null: nothing.
    /// </summary>
    public Action<Socket>? PlainSocketSetup { get; init; }
}

/// <summary>
/// A connection to an address (<see cref="MobileConnector.ConnectToAddressAsync"/>): a mobile
/// connection to the address's verified owner, or a plain TCP connection. Use <see cref="Stream"/>
/// and <see cref="ShutdownWrite"/> either way, or take <see cref="Mobile"/> / <see cref="PlainSocket"/>
/// to handle yourself (then do not dispose this object).
/// </summary>
public sealed class AddressConnection : IAsyncDisposable
{
    private NetworkStream? _plainStream;

    internal AddressConnection(IPEndPoint target, MobileConnection mobile)
    {
        Target = target;
        Mobile = mobile;
    }

    internal AddressConnection(IPEndPoint target, Socket plain, string plainReason)
    {
        Target = target;
        PlainSocket = plain;
        PlainReason = plainReason;
    }

    /// <summary>The address and port the application asked for.</summary>
    public IPEndPoint Target { get; }

    /// <summary>True: a mobile connection to the verified owner (it survives moves); false: plain TCP.</summary>
    public bool IsMobile => Mobile is not null;

    public MobileConnection? Mobile { get; }

    public Socket? PlainSocket { get; }

    /// <summary>The verified GUID at the other end; empty for plain TCP (no identity).</summary>
    public HostGuid Peer => Mobile?.RemoteGuid ?? HostGuid.Empty;

    /// <summary>Why the connection is plain TCP ("no verified owner ...", or the failed mobile attempt); null when mobile.</summary>
    public string? PlainReason { get; }

    public Stream Stream => Mobile?.Stream ?? (_plainStream ??= new NetworkStream(PlainSocket!, ownsSocket: true));

    /// <summary>Half-close: no more bytes from this side (FIN after everything written).</summary>
    public void ShutdownWrite()
    {
        if (Mobile is { } mobile)
        {
            mobile.ShutdownWrite();
        }
        else
        {
            PlainSocket!.Shutdown(SocketShutdown.Send);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Mobile is { } mobile)
        {
            await mobile.DisposeAsync().ConfigureAwait(false);
        }
        else if (_plainStream is { } stream)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            PlainSocket!.Dispose();
        }
    }
}
