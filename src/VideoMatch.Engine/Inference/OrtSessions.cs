using Microsoft.ML.OnnxRuntime;

namespace VideoMatch.Engine.Inference;

/// <summary>Opens ONNX Runtime sessions on the configured execution provider, the same way for every model.</summary>
internal static class OrtSessions
{
    /// <summary>Session options for <paramref name="options"/>' provider; the caller owns and disposes them.</summary>
    /// <exception cref="InvalidOperationException">The CUDA provider cannot start.</exception>
    public static SessionOptions CreateOptions(InferenceOptions options, out string provider)
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = options.IntraOpThreads,
            EnableCpuMemArena = options.CpuMemoryArena,
            EnableMemoryPattern = options.CpuMemoryPattern,
        };
        provider = "cpu";
        if (!options.IsCuda)
        {
            return sessionOptions;
        }

        provider = $"cuda:{options.DeviceId}";
        try
        {
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(CudaProviderOptions(options));
            sessionOptions.AppendExecutionProvider_CUDA(cuda);
            return sessionOptions;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            sessionOptions.Dispose();
            throw new InvalidOperationException(
                $"The CUDA execution provider could not start on device {options.DeviceId}: {e.Message.Trim()} " +
                "Install CUDA 13 and cuDNN 9 and put their libraries on LD_LIBRARY_PATH, or set Inference:ExecutionProvider=cpu.", e);
        }
    }

    /// <summary>ONNX Runtime's CUDA provider options for the configured settings.</summary>
    public static Dictionary<string, string> CudaProviderOptions(InferenceOptions options)
    {
        var settings = new Dictionary<string, string>
        {
            ["device_id"] = options.DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["cudnn_conv_algo_search"] = options.CudnnConvAlgoSearch.ToUpperInvariant(),
            ["prefer_nhwc"] = options.PreferNhwc ? "1" : "0",
            // Host buffers are pinned once, so copies in and out use the default stream without staging.
            ["do_copy_in_default_stream"] = "1",
        };
        if (options.GpuMemoryLimitMb > 0)
        {
            settings["gpu_mem_limit"] = (options.GpuMemoryLimitMb * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return settings;
    }

    /// <exception cref="InvalidOperationException">ONNX Runtime cannot load the model.</exception>
    public static InferenceSession Open(byte[] model, SessionOptions sessionOptions, string what)
    {
        try
        {
            return new InferenceSession(model, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidOperationException($"ONNX Runtime could not load {what}: {e.Message.Trim()}", e);
        }
    }
}
