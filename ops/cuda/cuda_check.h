// Turning CUDA runtime and cuBLASLt errors into Status. Never aborts: every call and every
// launch is checked and its error returned to the caller (STYLE.md: one error type).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "common/status.h"

namespace strata::ops::cuda {

inline Status CudaError(cudaError_t err, const char* what, const char* file, int line) {
  return InternalError(std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                       cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

inline Status CublasError(cublasStatus_t st, const char* what, const char* file, int line) {
  return InternalError(std::string(what) + " failed: cuBLAS status " +
                       std::to_string(static_cast<int>(st)) + " at " + file + ":" +
                       std::to_string(line));
}

}  // namespace strata::ops::cuda

// Returns a Status from the enclosing function when the CUDA runtime call fails.
#define STRATA_CUDA_RETURN_IF_ERROR(expr)                                                 \
  do {                                                                                    \
    cudaError_t strata_cuda_err_ = (expr);                                                \
    if (strata_cuda_err_ != cudaSuccess)                                                  \
      return ::strata::ops::cuda::CudaError(strata_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// Same for cuBLAS / cuBLASLt calls.
#define STRATA_CUBLAS_RETURN_IF_ERROR(expr)                                                  \
  do {                                                                                       \
    cublasStatus_t strata_cublas_st_ = (expr);                                               \
    if (strata_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                          \
      return ::strata::ops::cuda::CublasError(strata_cublas_st_, #expr, __FILE__, __LINE__); \
  } while (0)
