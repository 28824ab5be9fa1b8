using System.Buffers;
using System.IO.Compression;
using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Grpc.Net.Compression;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Server.Services;

/// <summary>
/// Binds videomatch.v1.VideoMatcher with request marshallers that answer a body which is not the method's message
/// with INVALID_ARGUMENT naming it. The generated binding's marshallers throw Protobuf's own exception, which gRPC
/// reports as UNKNOWN "Exception was thrown by handler" and logs with a full stack trace for every 4-byte request.
/// The service therefore does not derive from the generated base class (that would bind each method twice).
/// </summary>
internal sealed class VideoMatcherMethods : IServiceMethodProvider<VideoMatcherService>
{
    private static readonly string Service = VideoMatcher.Descriptor.FullName;

    /// <summary>What gRPC's generated binding gives each method: POST only (any other verb matches no endpoint).</summary>
    private static readonly object[] Post = [new Microsoft.AspNetCore.Routing.HttpMethodMetadata(["POST"], acceptCorsPreflight: true)];

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<VideoMatcherService> context)
    {
        // A stream's messages are checked by its session, which can say which message of the stream was bad.
        context.AddDuplexStreamingMethod(Method(MethodType.DuplexStreaming, "MatchStream", StreamRequest.Parser, StreamResponse.Parser, checkedRequests: false), Post,
            (service, requests, responses, call) => service.MatchStream(requests, responses, call));
        context.AddUnaryMethod(Method(MethodType.Unary, "MatchPair", MatchPairRequest.Parser, MatchPairResponse.Parser), Post,
            (service, request, call) => service.MatchPair(request, call));
        context.AddUnaryMethod(Method(MethodType.Unary, "GetModelInfo", GetModelInfoRequest.Parser, ModelInfo.Parser), Post,
            (service, request, call) => service.GetModelInfo(request, call));
        context.AddUnaryMethod(Method(MethodType.Unary, "ListModels", ListModelsRequest.Parser, ListModelsResponse.Parser), Post,
            (service, request, call) => service.ListModels(request, call));
    }

    private static Method<TRequest, TResponse> Method<TRequest, TResponse>(MethodType type, string name, MessageParser<TRequest> requests, MessageParser<TResponse> responses,
        bool checkedRequests = true)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new() =>
        new(type, Service, name, Marshaller(requests, checkedRequests), Marshaller(responses, checkedRequests: false));

    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser, bool checkedRequests)
        where T : IMessage<T>, new() =>
        Marshallers.Create<T>(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => checkedRequests ? Parse(parser, context.PayloadAsReadOnlySequence()) : parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    private static T Parse<T>(MessageParser<T> parser, ReadOnlySequence<byte> payload)
        where T : IMessage<T>, new()
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"The request is not a valid {new T().Descriptor.FullName} ({e.Message}); send messages built from videomatch.proto."));
        }
    }
}

/// <summary>
/// gzip as gRPC's own provider does it, but a message marked gzip whose bytes are not gzip is answered
/// INVALID_ARGUMENT saying so, instead of UNKNOWN with a stack trace in the log.
/// </summary>
internal sealed class CheckedGzipProvider : ICompressionProvider
{
    public string EncodingName => "gzip";

    public Stream CreateCompressionStream(Stream stream, CompressionLevel? compressionLevel) =>
        new GZipStream(stream, compressionLevel ?? CompressionLevel.Fastest, leaveOpen: true);

    public Stream CreateDecompressionStream(Stream stream) => new CheckedStream(new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true));

    private sealed class CheckedStream(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Checked(() => inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidDataException e)
            {
                throw NotGzip(e);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private static int Checked(Func<int> read)
        {
            try
            {
                return read();
            }
            catch (InvalidDataException e)
            {
                throw NotGzip(e);
            }
        }

        private static RpcException NotGzip(InvalidDataException e) => new(new Status(StatusCode.InvalidArgument,
            $"The message is marked compressed with grpc-encoding gzip but is not valid gzip ({e.Message}); compress it with gzip or send it uncompressed."));
    }
}
