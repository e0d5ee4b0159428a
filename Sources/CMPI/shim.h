// OpenMPI's handles are macros over global structs that Swift cannot import; these inline
// functions return them. Only Sources/Dist imports this module.
#ifndef KDTRAIN_CMPI_SHIM_H
#define KDTRAIN_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm kd_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm kd_mpi_comm_null(void) { return MPI_COMM_NULL; }

static inline MPI_Datatype kd_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype kd_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype kd_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype kd_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype kd_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype kd_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype kd_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Op kd_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op kd_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op kd_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op kd_mpi_lor(void) { return MPI_LOR; }
static inline void *kd_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *kd_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request kd_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Errhandler kd_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Info kd_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int kd_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int kd_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int kd_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int kd_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int kd_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int kd_mpi_success(void) { return MPI_SUCCESS; }
static inline int kd_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int kd_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline MPI_Status *kd_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Datatype kd_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Errhandler kd_mpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }
static inline int kd_mpi_undefined(void) { return MPI_UNDEFINED; }
#endif
